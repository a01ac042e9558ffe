"""Runtime configuration: one `Settings` object, built by the CLI or `create_app`, passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8765
    max_body_bytes: int = Field(default=8 * 1024 * 1024, description="Larger bodies get 413.")
    max_upload_bytes: int = Field(
        default=16 * 1024**3, description="Body limit of file uploads to import jobs."
    )
    max_events_per_request: int = 1000
    admin_token: str | None = Field(
        default=None, description="Extra admin token accepted besides those in the store."
    )
    # operations (docs/operations.md)
    max_inflight_requests: int | None = Field(
        default=128, ge=1, description="Per process; beyond it requests get 503 at once."
    )
    shed_lag_ms: float | None = Field(
        default=10.0, gt=0,
        description="Per process: while the event loop's lag stays above this for 100 ms, new "
        "requests get 503 at once (they queue unseen); None: never.",
    )  # fmt: skip
    max_waiting_answers: int | None = Field(
        default=4, ge=0,
        description="Per process: campaign answers waiting for an answer thread at most; "
        "beyond, 503 at once (cached answers never wait); None: no limit.",
    )  # fmt: skip
    rate_limit_per_token: float | None = Field(
        default=None, gt=0, description="Requests/s per bearer token per process; over: 429."
    )
    rate_limit_burst: float | None = Field(
        default=None, ge=1, description="Token bucket size (default: one second's worth)."
    )
    answer_threads: int = Field(
        default=2, ge=1, le=64,
        description="Per process: campaign answers computed at once (cached ones never wait); "
        "more only make them share the cores and the interpreter with the event loop.",
    )  # fmt: skip
    metrics_public: bool = Field(default=False, description="Serve /metrics without a token.")
    access_log: bool = Field(default=True, description="One JSON log line per request.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Level of the server's JSON log lines (tastebud, uvicorn)."
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="On SIGTERM, in-flight requests get this long to finish."
    )
    shutdown_delay_seconds: float = Field(
        default=0.0, ge=0, description="On SIGTERM, keep serving (/ready 503) this long first."
    )


class StoreSettings(BaseModel):
    """PostgreSQL's limits: an outage answers 503 at once, it never hangs a request."""

    connect_timeout_seconds: float = Field(
        default=3.0, ge=1, description="A new connection to PostgreSQL may take this long."
    )
    pool_timeout_seconds: float = Field(
        default=5.0, gt=0, description="A call waits this long at most for a pooled connection."
    )
    statement_timeout_seconds: float | None = Field(
        default=60.0, gt=0,
        description="A statement may run this long (bulk loads and migrations excepted); "
        "None: no limit.",
    )  # fmt: skip


class IngestSettings(BaseModel):
    max_batch_events: int = Field(default=5000, description="Events per group commit at most.")
    max_wait_ms: float = Field(default=2.0, description="How long a commit waits to fill up.")


class ImportSettings(BaseModel):
    max_error_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    chunk_rows: int = 1_000_000


class ServingSettings(BaseModel):
    history_length: int = Field(
        default=200, ge=1,
        description="Latest events of the user that Interactions filter conditions see, and the "
        "scoring window of a model that declares none (recipes declare their own: "
        "serving/history.py). Seen-item exclusion always covers the whole history.",
    )  # fmt: skip
    cached_versions: int = Field(default=8, ge=1, description="Solution versions kept loaded.")
    refresh_seconds: float = Field(
        default=60.0, description="Reload a loaded version after this long (sees erasures)."
    )
    approximate_from_items: int | None = Field(
        default=None, ge=1,
        description="Factor models over at least this many items answer top-k through an "
        "approximate index (faiss IVF); None (default): always exact.",
    )  # fmt: skip
    approximate_probe_share: float = Field(
        default=0.2, gt=0.0, le=1.0,
        description="Share of the index's clusters each approximate query visits (recall/speed).",
    )  # fmt: skip
    cached_answers: int = Field(
        default=100_000, ge=1, description="Campaign answers kept per process (without Redis)."
    )
    cache_sync_seconds: float = Field(
        default=0.005, ge=0.0, le=1.0,
        description="How often a process reads new events to drop changed users' answers.",
    )  # fmt: skip
    shared_answers: bool = Field(
        default=False,
        description="Without Redis, share computed campaign answers between this home's "
        "processes through a file (answers.sqlite); `tastebud serve --workers N` turns it on.",
    )


class StreamSettings(BaseModel):
    """Ingestion from a NATS JetStream stream (``tastebud consume nats``)."""

    nats_url: str = "nats://127.0.0.1:4222"
    stream: str = "TASTEBUD_EVENTS"
    subject: str = Field(
        default="tastebud.events.>", description="The group is the subject's last token."
    )
    durable: str = Field(default="tastebud", description="Durable consumer name (its position).")
    batch: int = Field(default=256, ge=1, description="Messages fetched and committed at once.")
    group: str | None = Field(
        default=None, description="Store every message in this group, whatever its subject."
    )
    create_stream: bool = Field(default=True, description="Create the stream if it is missing.")
    ack_wait_seconds: float = Field(
        default=30.0, gt=0, description="Unacked messages are redelivered after this long."
    )
    connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Give up when NATS cannot be reached for this long."
    )
    dead_letter_prefix: str | None = Field(
        default="tastebud.dead", description="Rejected messages go to PREFIX.<group>; None: off."
    )


class ScheduleSettings(BaseModel):
    """Retraining schedules (docs/schedules.md): who runs them and how runs are leased."""

    run_in_serve: bool = Field(
        default=True, description="`tastebud serve` runs due schedules (off: only workers do)."
    )
    poll_seconds: float = Field(default=5.0, gt=0, description="How often due runs are sought.")
    lease_seconds: float = Field(
        default=60.0, ge=3,
        description="A claimed run's lease, renewed while it trains; a dead worker's run is "
        "taken over once it expires.",
    )  # fmt: skip
    groups: list[str] | None = Field(
        default=None, description="Run only these dataset groups' schedules (default: all)."
    )


class MessagingSettings(BaseModel):
    """Messages, channels and engagement tracking (docs/messaging.md)."""

    public_url: str = Field(
        default="http://127.0.0.1:8765",
        description="Where recipients reach the tracking endpoints (pixel, clicks, unsubscribe).",
    )
    secret: str | None = Field(
        default=None,
        description="Key that signs tracking tokens; default: one made once in home/messaging.key "
        "(set it when several hosts serve the tracking endpoints).",
    )  # fmt: skip
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "tastebud <noreply@localhost>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    webhook_url: str | None = Field(
        default=None, description="SMS and push provider: messages are POSTed here as JSON."
    )
    llm_url: str | None = Field(
        default=None,
        description="OpenAI-compatible chat completions endpoint (…/v1/chat/completions); "
        "unset: the llm content provider is off.",
    )  # fmt: skip
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str | None = None
    llm_timeout_seconds: float = Field(default=30.0, gt=0)
    rate_per_second: dict[str, float] = Field(
        default={"email": 20.0, "sms": 5.0, "webhook": 50.0},
        description="Messages sent per second at most, per channel.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Tries per message (transient errors).")
    retry_backoff_seconds: float = Field(default=0.5, ge=0, description="Doubled each retry.")
    max_sms_parts: int = Field(default=1, ge=1, le=10, description="SMS longer than this fail.")
    banned_words: list[str] = Field(
        default_factory=list, description="Drafts containing one of these fail their checks."
    )
    machine_open_seconds: float = Field(
        default=2.0, ge=0, description="Opens and clicks this soon after sending are machines'."
    )


class ExperimentSettings(BaseModel):
    """How exposures (and campaign answers, for metric attributions) are logged: buffered,
    written in batches by a background thread (docs/experiments.md says what a crash loses)."""

    flush_seconds: float = Field(
        default=0.2, gt=0, description="Buffered records wait at most this."
    )
    batch: int = Field(default=2_000, ge=1, description="Records per write at most.")
    buffer_capacity: int = Field(
        default=100_000, ge=1, description="Records held while the store is slow or down."
    )
    max_wait_seconds: float = Field(
        default=0.5, ge=0, description="A full buffer makes a request wait this long, then drops."
    )


class FeatureSettings(BaseModel):
    """The feature store (docs/features.md)."""

    sync_seconds: float = Field(
        default=0.25, gt=0, description="Online values are recomputed at least this often."
    )
    min_sync_gap_seconds: float = Field(
        default=0.05, ge=0, description="…and at most this often, however fast events arrive."
    )
    lease_seconds: float = Field(
        default=5.0, gt=0, description="With Redis: how long the publishing process's lease lasts."
    )
    redis_timeout_seconds: float = Field(
        default=0.05, gt=0, description="Online reads fail (NotReady) when Redis is this slow."
    )
    run_batch: bool = Field(
        default=True, description="Following processes recompute batch features when due."
    )


class Settings(BaseSettings):
    """Every setting has one default, here; env vars `TASTEBUD_*` (nested with `__`) override."""

    model_config = SettingsConfigDict(env_prefix="TASTEBUD_", env_nested_delimiter="__")

    home: Path = Path(".tastebud")
    database_url: str | None = Field(
        default=None, description="postgresql://… for PostgreSQL; default: SQLite under home."
    )
    redis_url: str | None = Field(
        default=None, description="redis://… to share campaign answers between API workers."
    )
    default_group: str = "default"
    api: ApiSettings = ApiSettings()
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    imports: ImportSettings = ImportSettings()
    serving: ServingSettings = ServingSettings()
    stream: StreamSettings = StreamSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    messaging: MessagingSettings = MessagingSettings()
    experiments: ExperimentSettings = ExperimentSettings()
    features: FeatureSettings = FeatureSettings()

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'tastebud.db').resolve()}"

    @property
    def artifacts(self) -> Path:
        """Where trained solution versions live (shared storage when scaled out)."""
        return self.home / "artifacts"
