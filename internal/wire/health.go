package wire

// Health is the answer of GET /healthz and GET /readyz when all is well.
type Health struct {
	Status string `json:"status"`
}
