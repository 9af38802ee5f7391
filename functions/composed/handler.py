"""Lambda entry point when all three functions are deployed as one."""

from mangum import Mangum

from functions.composed.app import create_app
from functions.core.settings import Settings

handler = Mangum(create_app(Settings()), lifespan="off")
