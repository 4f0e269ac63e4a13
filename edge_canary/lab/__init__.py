"""The lab's tools: settings, network namespaces, status, the artifact builder and the load generator."""
