"""Lambda entry point: init loads the model once; `handler` serves API Gateway events."""

from mangum import Mangum

from functions.core.settings import Settings
from functions.preprocess.app import create_app

handler = Mangum(create_app(Settings()), lifespan="off")
