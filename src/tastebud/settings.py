"""Runtime configuration: one `Settings` object, built by the CLI or `create_app`, passed down."""

from __future__ import annotations

from pathlib import Path

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


class IngestSettings(BaseModel):
    max_batch_events: int = Field(default=5000, description="Events per group commit at most.")
    max_wait_ms: float = Field(default=2.0, description="How long a commit waits to fill up.")


class ImportSettings(BaseModel):
    max_error_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    chunk_rows: int = 1_000_000


class ServingSettings(BaseModel):
    history_length: int = Field(
        default=200, ge=1, description="Recent events a recommendation request reads per user."
    )
    cached_versions: int = Field(default=8, ge=1, description="Solution versions kept loaded.")
    refresh_seconds: float = Field(
        default=60.0, description="Reload a loaded version after this long (sees erasures)."
    )


class Settings(BaseSettings):
    """Every setting has one default, here; env vars `TASTEBUD_*` (nested with `__`) override."""

    model_config = SettingsConfigDict(env_prefix="TASTEBUD_", env_nested_delimiter="__")

    home: Path = Path(".tastebud")
    database_url: str | None = Field(
        default=None, description="postgresql://… for PostgreSQL; default: SQLite under home."
    )
    default_group: str = "default"
    api: ApiSettings = ApiSettings()
    ingest: IngestSettings = IngestSettings()
    imports: ImportSettings = ImportSettings()
    serving: ServingSettings = ServingSettings()

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'tastebud.db').resolve()}"

    @property
    def artifacts(self) -> Path:
        """Where trained solution versions live (shared storage when scaled out)."""
        return self.home / "artifacts"
