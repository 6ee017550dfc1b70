"""The runtime every pipeline step stands on: configuration, connections, logs, the COPY
reader, the Postgres→Arrow type map and the lake contract. It imports nothing else of the
project."""
