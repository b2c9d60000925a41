package replay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartPanels are the metrics drawn over time, one panel each.
var chartPanels = []struct {
	title string
	value func(*Bucket) float64
}{
	{"HR@k", func(b *Bucket) float64 { return b.HR }},
	{"NDCG@k", func(b *Bucket) float64 { return b.NDCG }},
	{"slate novelty (bits)", func(b *Bucket) float64 { return b.Novelty }},
	{"ILD (category)", func(b *Bucket) float64 { return b.ILD }},
	{"coverage in slice", func(b *Bucket) float64 { return b.Coverage }},
}

// chartWidth and chartHeight are the chart's size (tests shrink it).
var chartWidth, chartHeight = vg.Points(1200), vg.Points(720)

// WriteChart draws the metrics over time of each result — one panel per
// metric, one line per policy, the x axis the share of the stream replayed
// — so a reader sees whether a policy learns (its accuracy rises) and what
// it trades for it. format is "png" or "svg".
func WriteChart(w io.Writer, results []*Result, format string) error {
	if len(results) == 0 {
		return errors.New("replay: chart: no results")
	}
	const cols, rows = 3, 2
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	info := plot.New()
	info.HideAxes()
	info.Title.Text = chartCaption(results)
	info.Legend.Top = true
	info.Legend.Left = true
	info.Legend.TextStyle.Font.Size = vg.Points(14)
	for pi, panel := range chartPanels {
		p := plot.New()
		p.Title.Text = panel.title
		p.X.Label.Text = "% of stream"
		p.X.Min, p.X.Max = 0, 100
		p.Y.Min = 0
		for ri, res := range results {
			if len(res.OverTime) == 0 || res.TotalEvents == 0 {
				continue
			}
			pts := make(plotter.XYs, 0, len(res.OverTime))
			for i := range res.OverTime {
				b := &res.OverTime[i]
				pts = append(pts, plotter.XY{X: 100 * float64(b.End) / float64(res.TotalEvents), Y: panel.value(b)})
			}
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return fmt.Errorf("replay: chart: %w", err)
			}
			line.Color = plotutil.Color(ri)
			line.Dashes = plotutil.Dashes(ri)
			line.Width = vg.Points(1.5)
			points.Color = plotutil.Color(ri)
			points.Shape = plotutil.Shape(ri)
			p.Add(line, points)
			if pi == 0 {
				info.Legend.Add(res.Policy, line, points)
			}
		}
		grid[pi/cols][pi%cols] = p
	}
	grid[rows-1][cols-1] = info

	width, height := chartWidth, chartHeight
	var c vg.CanvasWriterTo
	switch strings.ToLower(format) {
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))}
	case "svg":
		c = vgsvg.New(width, height)
	default:
		return fmt.Errorf("replay: chart: unknown format %q (want png or svg)", format)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for col := range grid[r] {
			if grid[r][col] != nil {
				grid[r][col].Draw(canvases[r][col])
			}
		}
	}
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("replay: chart: %w", err)
	}
	return nil
}

func chartCaption(results []*Result) string {
	r := results[0]
	name := filepath.Base(strings.TrimPrefix(r.Stream, "movielens:"))
	return fmt.Sprintf("prequential replay of %s\n%d events, k=%d, catalog %s\n(metrics per %d%% slice of the stream)",
		name, r.TotalEvents, r.K, r.Catalog, 100/max(len(r.OverTime), 1))
}

// SaveChart writes the chart to path, the format taken from its extension
// (.png or .svg).
func SaveChart(path string, results []*Result) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "png" && format != "svg" {
		return fmt.Errorf("replay: chart %s: the file name must end in .png or .svg", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("replay: chart: %w", err)
	}
	if err := WriteChart(f, results, format); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replay: chart: %w", err)
	}
	return nil
}
