"""Options of one nightly scan: read from ``SOILWATCH_SCAN_*`` environment variables, overridden by the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NightlyOptions"]


class NightlyOptions(BaseSettings):
    """What a nightly scan does and how. Environment: the field name upper-cased with ``SOILWATCH_SCAN_``."""

    model_config = SettingsConfigDict(env_prefix="SOILWATCH_SCAN_", env_file=".env", extra="ignore")

    inbox: Path | None = Field(default=None, description="Folder searched (recursively) for new scenes.")
    extensions: tuple[str, ...] = (".tif", ".tiff", ".img", ".jp2", ".vrt")
    date_pattern: str | None = Field(
        default=None,
        description="Regular expression with groups year, month, day matched against the file name; when it matches "
        "it gives the acquisition date (else: tags, then the usual name patterns).",
    )
    work_dir: Path | None = Field(
        default=None, description="Mosaics (VRT) are written here; on shared storage for a cluster. Default: "
        "<data_dir>/nightly."
    )
    report_dir: Path | None = Field(
        default=None, description="Reports go to <report_dir>/run-<id>/. Default: work_dir."
    )
    model: str = Field(
        default="auto",
        description="A model name, a weights file, or auto: the learned model for two dates at 5 m or finer, else the "
        "spectral baseline (detector.auto).",
    )
    self_train: bool = Field(
        default=False,
        description="Adapt the learned model to each pair of new and earlier imagery before detecting it "
        "(self-training on its own confident predictions, as soilwatch train --self-train); more than twice the scan "
        "time, no gain at 10 m. Off by default.",
    )
    self_train_steps: int = Field(default=100, ge=1, description="Fine-tune steps of each self-training.")
    unit_px: int = Field(default=2048, ge=64, description="Work units: blocks of this many pixels on the before grid.")
    workers: int | None = Field(default=None, ge=1, description="Local processes; default: all cores.")
    scheduler: str | None = Field(default=None, description="Dask scheduler address, e.g. tcp://host:8786.")
    max_attempts: int = Field(default=3, ge=1, description="Tries per unit before it is recorded as failed.")
    lock_stale_s: float = Field(default=300.0, gt=0, description="A lock without a heartbeat this long is stale.")
    heartbeat_s: float = Field(default=15.0, gt=0)
    min_cover: float = Field(
        default=0.95, gt=0, le=1, description="Earlier imagery must cover this share of a new scene to be its 'before'."
    )
    webhook_url: str | None = Field(default=None, description="The run's summary is POSTed here as JSON.")
    report_top: int = Field(default=200, ge=0, description="Suspected violations listed in the Markdown report.")
