package main

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"os"
	"strconv"
	"strings"
)

// runChart measures throughput against queue depth on both systems and
// writes the chart as SVG.
func runChart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("vsriver chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.flags(fs)
	depthList := fs.String("depths", "0,10000,100000,1000000", "queue depths: jobs queued behind the measured ones, comma-separated")
	out := fs.String("out", "throughput-vs-depth.svg", "SVG file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.rounds = max(o.rounds, 1)
	var depths []int
	for _, f := range strings.Split(*depthList, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || d < 0 {
			return fmt.Errorf("-depths: %q is not a depth", f)
		}
		depths = append(depths, d)
	}
	if o.depthJobs < 1 {
		return fmt.Errorf("-depth-jobs must be at least 1")
	}
	var river, gantry []float64
	for _, d := range depths {
		o.depth = d + o.depthJobs
		sc := scenario{name: fmt.Sprintf("depth %d: work %d jobs of %d queued", d, o.depthJobs, o.depth), run: deep}
		r, g, err := rounds(ctx, &o, sc, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		jps := func(m measurement) float64 { return m.jobsPerSec }
		river, gantry = append(river, median(r, jps)), append(gantry, median(g, jps))
	}
	svg := chartSVG(depths, river, gantry, fmt.Sprintf("jobs/s working %d no-op jobs, concurrency %d, median of %d", o.depthJobs, o.concurrency, o.rounds))
	if err := os.WriteFile(*out, []byte(svg), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "depth\tRiver jobs/s\tGantry jobs/s\n")
	for i, d := range depths {
		fmt.Fprintf(stdout, "%d\t%.0f\t%.0f\n", d, river[i], gantry[i])
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// short writes n as 0, 10k, 1M.
func short(n int) string {
	switch {
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// chartSVG draws two series against evenly spaced depths.
func chartSVG(depths []int, river, gantry []float64, subtitle string) string {
	const w, h, left, right, top, bottom = 720.0, 420.0, 70.0, 30.0, 60.0, 60.0
	top0 := 1.0
	for i := range depths {
		top0 = max(top0, river[i], gantry[i])
	}
	// A round upper bound for the y axis.
	step := 1.0
	for step*10 < top0 {
		step *= 10
	}
	ymax := step
	for ymax < top0*1.05 {
		ymax += step / 2
	}
	x := func(i int) float64 {
		if len(depths) == 1 {
			return left + (w-left-right)/2
		}
		return left + float64(i)*(w-left-right)/float64(len(depths)-1)
	}
	y := func(v float64) float64 { return top + (h-top-bottom)*(1-v/ymax) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="16" font-weight="bold">Throughput against queue depth: River vs Gantry (PostgreSQL)</text>`+"\n", left)
	fmt.Fprintf(&b, `<text x="%.0f" y="44" fill="#555">%s</text>`+"\n", left, html.EscapeString(subtitle))
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), w-right, y(v))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%.0f</text>`+"\n", left-8, y(v)+4, v)
	}
	for i, d := range depths {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x(i), h-bottom+20, short(d))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle" fill="#555">jobs queued behind the measured ones</text>`+"\n", left+(w-left-right)/2, h-16)
	fmt.Fprintf(&b, `<text transform="translate(18 %.0f) rotate(-90)" text-anchor="middle" fill="#555">jobs/s</text>`+"\n", top+(h-top-bottom)/2)
	series := []struct {
		name, color string
		vs          []float64
	}{{"River v0.51.1", "#d9480f", river}, {"Gantry", "#1971c2", gantry}}
	for k, s := range series {
		var pts []string
		for i, v := range s.vs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2.5" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for i, v := range s.vs {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x(i), y(v), s.color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%.0f</text>`+"\n", x(i), y(v)-8, s.color, v)
		}
		lx := w - right - 150
		ly := top + 10 + float64(k)*18
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2.5"/>`+"\n", lx, ly, lx+24, ly, s.color)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+30, ly+4, s.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
