// Pins prometheus-operator's release whose ServiceMonitor CRD `cargo xtask cluster up`
// installs (example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
// of the module's source, verified against go.sum). Nothing here is built.
module chromadb.dev/xtask/prometheus-operator-crd

go 1.24

require github.com/prometheus-operator/prometheus-operator v0.85.0
