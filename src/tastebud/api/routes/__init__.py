"""One router per resource; `tastebud.api.app` includes them all."""
