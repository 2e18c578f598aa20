"""The adapters: the only package that imports the AWS SDK (boto3, botocore, pynamodb).

Importing it loads botocore's HTTP layer first, without pyOpenSSL (``botocore_http.load_http``), before
any adapter imports the SDK."""

from reliquary.adapters.botocore_http import load_http

load_http()
