"""In-memory ErpSource and CrmSink: fakes for tests, benchmarks and experiments."""
