module github.com/gather-go/gather

go 1.26.0

require go.uber.org/goleak v1.3.0

require github.com/prometheus/client_golang v1.25.0 // indirect
