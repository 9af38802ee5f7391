"""Lambda entry point: init opens the MongoDB client once (its URI from the connection secret
when one is configured); `handler` serves API Gateway events."""

from functions.core.http.lambda_adapter import lambda_handler
from functions.core.settings import Settings
from functions.core.stores.connection import resolve_connection
from functions.core.stores.factory import open_document_store
from functions.summary.service import routes

handler = lambda_handler(routes(open_document_store(resolve_connection(Settings()))))
