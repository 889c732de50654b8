package app

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/train"
)

// progress shows train.Progress: a bar redrawn in place on a terminal, plain lines
// (at most one every `every`) otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	every time.Duration
	last  time.Time
	drawn bool
	// elapsed is the training time of the last report (resumed time included),
	// for lines that are written between reports (the feature curve).
	elapsed time.Duration
}

func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, tty: isTerminal(w), label: label, every: 10 * time.Second}
}

func (p *progress) update(pr train.Progress) {
	p.elapsed = pr.Elapsed
	now := time.Now()
	if !p.tty && !p.last.IsZero() && now.Sub(p.last) < p.every && pr.Step != pr.Steps {
		return
	}
	p.last = now
	line := fmt.Sprintf("%s step %d", p.label, pr.Step)
	if pr.Steps > 0 {
		line = fmt.Sprintf("%s step %d/%d", p.label, pr.Step, pr.Steps)
	}
	line += fmt.Sprintf(" epoch %d %s %.1f img/s elapsed %s", pr.Epoch, losses(pr.Losses), pr.ImagesPerSec, pr.Elapsed.Round(time.Second))
	if pr.ETA >= 0 {
		line += " eta " + pr.ETA.Round(time.Second).String()
	}
	line += skipped(pr.Data)
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	bar := ""
	if pr.Steps > 0 {
		const width = 24
		n := min(width, pr.Step*width/pr.Steps)
		bar = "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "] "
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s", bar, line)
	p.drawn = true
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// skipped says how many training files the loader could not use, so that a
// folder of broken files does not train on a fraction of itself unnoticed.
func skipped(st dataset.Stats) string {
	if st.Corrupt+st.TooSmall == 0 {
		return ""
	}
	return fmt.Sprintf(" skipped %d of %d files (%d corrupt, %d too small)", st.Corrupt+st.TooSmall, st.Files, st.Corrupt, st.TooSmall)
}

func losses(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%.4g", k, m[k])
	}
	return b.String()
}
