// tastebud console: htmx settings and the charts (uPlot). No build step.
htmx.config.responseHandling = [
  { code: "204", swap: false },
  { code: "[23]..", swap: true },
  // the console's error fragments carry the API's message: show them where the answer goes
  { code: "[45]..", swap: true, error: false },
];

// <div class="chart" data-chart='{"x": [...], "series": {"name": [...]}, "xlabel": "..."}'>
function drawCharts(root) {
  root.querySelectorAll("div.chart[data-chart]:not([data-drawn])").forEach((el) => {
    const spec = JSON.parse(el.dataset.chart);
    const names = Object.keys(spec.series);
    const right = spec.right || []; // series drawn against a second axis, on the right
    const colors = ["#2f5bd3", "#d0702f", "#1f7a3f", "#8a3fc1"];
    // x counts versions or epochs: whole numbers only
    const axes = [{ label: spec.xlabel || "", incrs: [1, 2, 5, 10, 20, 50, 100] }, { scale: "y" }];
    if (right.length) axes.push({ scale: "r", side: 1, grid: { show: false }, label: right.join(", ") });
    const opts = {
      width: Math.max(280, el.clientWidth - 8),
      height: 240,
      scales: { x: { time: false } },
      axes: axes,
      series: [{ label: spec.xlabel || "x" }].concat(
        names.map((name, i) => ({
          label: name, scale: right.includes(name) ? "r" : "y",
          stroke: colors[i % colors.length], width: 2, points: { size: 7 },
        }))
      ),
    };
    const data = [spec.x].concat(names.map((n) => spec.series[n]));
    el.dataset.drawn = "1";
    new uPlot(opts, data, el);
  });
}
document.addEventListener("DOMContentLoaded", () => drawCharts(document));
document.addEventListener("htmx:afterSettle", (e) => drawCharts(e.target));

// <form data-upload="URL" data-target="#el">: the chosen file is sent as the request body (the
// console, like the API, takes uploads as a stream; no multipart parser needed).
document.addEventListener("submit", async (event) => {
  const form = event.target;
  // getAttribute: the form's own `dataset` field hides form.dataset
  const url = form.getAttribute("data-upload"), target = form.getAttribute("data-target");
  if (!url) return;
  event.preventDefault();
  const file = form.elements.file.files[0];
  const params = new URLSearchParams({ filename: file.name });
  for (const name of ["dataset", "mode", "max_error_rate"]) {
    const field = form.elements[name];
    if (field && field.value) params.set(name, field.value);
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(`${url}?${params}`, {
      method: "POST", body: file, headers: { "Content-Type": "application/octet-stream", "HX-Request": "true" },
    });
    const html = await response.text();
    const errors = document.getElementById("upload-error");
    if (response.ok) {
      errors.innerHTML = "";
      document.querySelector(target).outerHTML = html;
      htmx.process(document.querySelector(target));
    } else {
      errors.innerHTML = html;
    }
  } finally {
    button.disabled = false;
  }
});

// <input type="file" data-into="#textarea">: the chosen file's text goes into the field (the
// reels page's clip catalogue), so it is sent with the form like pasted text.
document.addEventListener("change", async (event) => {
  const input = event.target, into = input.getAttribute && input.getAttribute("data-into");
  if (!into || !input.files.length) return;
  document.querySelector(into).value = await input.files[0].text();
});
