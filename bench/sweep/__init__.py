"""The sweep layer: configuration (config, learning-rate tables), execution (runner), storage
(store) and provenance (env). It writes results; nothing here reads them back for analysis."""
