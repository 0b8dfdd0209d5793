package main

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestChartSVGIsWellFormed(t *testing.T) {
	svg := chartSVG([]int{0, 10000, 1000000}, []float64{12000, 11000, 9000}, []float64{8000, 7000, 5000}, "a <subtitle> & more")
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
	}
	for _, want := range []string{">1M<", ">10k<", ">12000<", ">5000<", "River v0.51.1", "Gantry"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name      string
		sc        scenario
		river     []measurement
		gantry    []measurement
		wantRatio float64
	}{
		{"throughput: Gantry ÷ River of the medians", scenario{name: "a"}, []measurement{{jobsPerSec: 100}, {jobsPerSec: 300}, {jobsPerSec: 200}}, []measurement{{jobsPerSec: 50}, {jobsPerSec: 100}, {jobsPerSec: 900}}, 0.5},
		{"latency: River ÷ Gantry of the medians", scenario{name: "c", latency: true}, []measurement{{p50ms: 2}, {p50ms: 4}}, []measurement{{p50ms: 6}}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := summarize(tt.sc, tt.river, tt.gantry)
			if r.Ratio != tt.wantRatio {
				t.Errorf("ratio %v, want %v", r.Ratio, tt.wantRatio)
			}
			if tt.sc.latency != (r.RiverJobsPerSec == nil && r.RiverP50Ms != nil) {
				t.Errorf("latency scenario %v but jobs/s %v and p50 %v", tt.sc.latency, r.RiverJobsPerSec, r.RiverP50Ms)
			}
		})
	}
}
