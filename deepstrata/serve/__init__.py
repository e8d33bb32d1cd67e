"""Serving a bundle over HTTP: ``deepstrata serve BUNDLE`` and ``deepstrata export BUNDLE``.

One concept per module:

- :mod:`~deepstrata.serve.settings`: the server's limits and options, validated once;
- :mod:`~deepstrata.serve.records`: the request and response models, built from the
  bundle's input features (the OpenAPI schema comes from them);
- :mod:`~deepstrata.serve.predictor`: records in, predictions out, through ``Model``;
- :mod:`~deepstrata.serve.batching`: concurrent requests gathered into one forward pass;
- :mod:`~deepstrata.serve.staging`: image and audio fields within a decode budget, decoded
  in a pool of their own, a bounded job at a time;
- :mod:`~deepstrata.serve.guard`: the ASGI layer every request passes first (request id,
  token, concurrency, body size, timeout, metrics, JSON errors);
- :mod:`~deepstrata.serve.app`: the FastAPI application and its endpoints;
- :mod:`~deepstrata.serve.protocol`: the HTTP connection: JSON for what h11 refuses, a
  deadline per request head, no query strings in the access log;
- :mod:`~deepstrata.serve.server`: uvicorn with a graceful, readiness-aware shutdown;
- :mod:`~deepstrata.export.onnx`: export to ONNX, checked against PyTorch, and the ONNX backend;
- :mod:`~deepstrata.cli.serve`: the two CLI commands.

Nothing is imported here: the CLI imports ``commands`` without FastAPI or torch.
"""
