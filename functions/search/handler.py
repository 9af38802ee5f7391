"""Lambda entry point: init wires the pipeline once; `handler` serves API Gateway events."""

from mangum import Mangum

from functions.core.settings import Settings
from functions.search.app import create_app

handler = Mangum(create_app(Settings()), lifespan="off")
