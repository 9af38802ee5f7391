"""Lambda entry point: init opens the MongoDB client once; `handler` serves API Gateway events."""

from functions.core.lambda_http import lambda_handler
from functions.core.settings import Settings
from functions.core.stores import open_document_store
from functions.summary.service import routes

handler = lambda_handler(routes(open_document_store(Settings())))
