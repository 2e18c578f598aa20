"""The door: RELIQUARY's REST API (FastAPI, served by API Gateway through Mangum, or by uvicorn locally).

The API holds no key rights. It authenticates the caller (``reliquary.identity``), takes the tenant only
from the verified token, and then invokes the capability functions with their own events, starts access
executions, and reads metadata through read-only adapters (``ports``)."""

API_VERSION = "1.0.0"
