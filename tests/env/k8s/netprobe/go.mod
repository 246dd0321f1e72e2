// netprobe: the network probe the real-node tests run in pods (tests/env/k8s/netprobe/main.go).
module strata.dev/tests/env/k8s/netprobe

go 1.24.0
