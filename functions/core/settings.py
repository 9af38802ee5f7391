"""One place for configuration: environment variables prefixed `MMSEARCH_`, read once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Runtime configuration shared by the three functions, the CLI and the local server."""

    model_config = SettingsConfigDict(env_prefix="MMSEARCH_", extra="ignore")

    home: Path = Field(Path(".mmsearch"), description="All local state lives here.")
    model_dir: Path | None = Field(None, description="Exported model folder; default under home.")

    milvus_uri: str | None = Field(None, description="Milvus URI; default: Milvus Lite in home.")
    milvus_token: SecretStr | None = None
    collection_prefix: str = "mmsearch_"
    index_type: Literal["IVF_FLAT", "FLAT", "AUTOINDEX"] = "IVF_FLAT"
    nlist: int | None = Field(None, ge=1, le=65536, description="None: sized to the corpus.")
    nprobe: int = Field(32, ge=1, le=65536)

    mongo_uri: SecretStr | None = Field(None, description="None: the local server is started.")
    mongo_database: str = "mmsearch"
    store_timeout_s: float = Field(3.0, gt=0, description="Upper bound on any one store call.")
    batch_timeout_s: float = Field(60.0, gt=0, description="Store timeout for batch commands.")

    encoder_threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = auto.")
    encode_batch_size: int = Field(32, ge=1, le=1024)

    max_query_chars: int = Field(1000, ge=1)
    match_candidates: int = Field(100, ge=1, le=16384, description="Hits fetched before ranking.")

    deployment: Literal["in_process", "lambda"] = "in_process"
    preprocess_function: str | None = Field(None, description="Lambda name for split deployment.")
    summary_function: str | None = None

    @property
    def resolved_model_dir(self) -> Path:
        """The exported model folder in use."""
        return self.model_dir or self.home / "models" / DEFAULT_MODEL_NAME

    @property
    def resolved_milvus_uri(self) -> str:
        """A Milvus server URI, or the Milvus Lite file under home."""
        return self.milvus_uri or str(self.home / "milvus" / "milvus.db")
