"""Lambda entry point: init opens the MongoDB client once; `handler` serves API Gateway events."""

from mangum import Mangum

from functions.core.settings import Settings
from functions.summary.app import create_app

handler = Mangum(create_app(Settings()), lifespan="off")
