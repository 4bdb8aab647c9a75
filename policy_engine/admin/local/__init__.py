"""Local stand-ins for what a deployment gets from elsewhere (an identity provider,
API Gateway), for the quickstart, the tests and ``serve``. Never imported by the handler."""
