"""What runs in the cluster: debug-container profiles and specs, running a tool by exec, sinks."""
