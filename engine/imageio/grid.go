package imageio

import (
	"errors"
	"fmt"
	"math"
)

// GridOptions lay out a contact sheet.
type GridOptions struct {
	Cols       int      // images per row; 0 means ⌈√N⌉
	Pad        int      // pixels between cells and around the sheet
	Background [3]uint8 // colour of the padding and of empty cells
}

// Grid places images row by row on one sheet (e.g. training samples from a fixed
// latent set). Cells are as large as the largest image; smaller images sit in the
// top-left corner of their cell.
func Grid(images []*RGB, opt GridOptions) (*RGB, error) {
	if len(images) == 0 {
		return nil, errors.New("imageio: grid of no images")
	}
	if opt.Pad < 0 || opt.Cols < 0 {
		return nil, fmt.Errorf("imageio: grid: negative pad %d or cols %d", opt.Pad, opt.Cols)
	}
	cw, ch := 0, 0
	for i, m := range images {
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("grid image %d: %w", i, err)
		}
		cw, ch = max(cw, m.W), max(ch, m.H)
	}
	cols := opt.Cols
	if cols == 0 {
		cols = int(math.Ceil(math.Sqrt(float64(len(images)))))
	}
	cols = min(cols, len(images))
	rows := (len(images) + cols - 1) / cols
	w, h := cols*cw+(cols+1)*opt.Pad, rows*ch+(rows+1)*opt.Pad
	if err := DefaultLimits.check(w, h); err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	out := NewRGB(w, h)
	bg := opt.Background
	for i := 0; i < len(out.Pix); i += 3 {
		out.Pix[i], out.Pix[i+1], out.Pix[i+2] = bg[0], bg[1], bg[2]
	}
	for i, m := range images {
		x0 := opt.Pad + (i%cols)*(cw+opt.Pad)
		y0 := opt.Pad + (i/cols)*(ch+opt.Pad)
		for y := 0; y < m.H; y++ {
			copy(out.Pix[((y0+y)*w+x0)*3:], m.Pix[y*m.W*3:(y+1)*m.W*3])
		}
	}
	return out, nil
}
