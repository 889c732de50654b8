package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/tile"
)

func upscaleCommand() Command {
	return Command{
		Name:    "upscale",
		Summary: "upscale a PNG or a folder of PNGs with a super-resolution model, offline",
		Run:     runUpscale,
	}
}

func runUpscale(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "upscale", "--model FILE.safetensors --in IN --out OUT [--scale 2|4] [--tile N] [--backend NAME]")
	modelPath := fs.String("model", "", "upscaler weights (`FILE`.safetensors)")
	in := fs.String("in", "", "input PNG, or a folder of PNGs")
	out := fs.String("out", "", "output PNG, or a folder (created) when --in is a folder")
	scale := fs.Int("scale", 0, "total scale, a power of the model's (default: the model's)")
	tileSide := fs.Int("tile", tile.DefaultSide, "upscale images larger than `N`×N input pixels in overlapping tiles: memory follows the tile, the output stays the same (0: whole images)")
	backendName := fs.String("backend", "", "backend: "+choose.Describe(false))
	if err := parse(fs, args); err != nil {
		return err
	}
	if *modelPath == "" || *in == "" || *out == "" {
		return usagef("--model, --in and --out are required")
	}
	st, err := os.Stat(*in)
	if err != nil {
		return usagef("--in: %v", err)
	}
	b, err := choose.Open(*backendName)
	if err != nil {
		return usagef("%v", err)
	}
	defer b.Close()
	net, meta, err := model.Open(*modelPath, b)
	if err != nil {
		return err
	}
	defer net.Free()
	cfg := net.Config()
	if cfg.Role != model.Upscaler {
		return usagef("%s holds a %s (%s), not an upscaler", *modelPath, cfg.Role, cfg.Preset)
	}
	tiler, err := tile.New(cfg, *tileSide)
	if err != nil {
		return usagef("%v", err)
	}
	if *scale == 0 {
		*scale = cfg.Scale
	}
	passes := 0
	for s := 1; s < *scale; s *= cfg.Scale {
		passes++
	}
	if *scale < cfg.Scale || pow(cfg.Scale, passes) != *scale {
		return usagef("--scale %d is not a power of the model's scale %d", *scale, cfg.Scale)
	}
	digest, err := fileDigest(*modelPath)
	if err != nil {
		return err
	}
	text := []imageio.Text{
		{Key: "hirez.upscaler", Value: cfg.Preset},
		{Key: "hirez.upscaler.digest", Value: digest},
		{Key: "hirez.scale", Value: fmt.Sprint(*scale)},
	}
	if v := meta["hirez.train.steps"]; v != "" {
		text = append(text, imageio.Text{Key: "hirez.upscaler.steps", Value: v})
	}
	one := func(src, dst string) error {
		img, err := imageio.DecodeFile(src, imageio.DefaultLimits)
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		for range passes {
			if img, err = tiler.Upscale(ctx, img, tile.Net(net)); err != nil {
				return fmt.Errorf("upscale %s: %w", src, err)
			}
		}
		if err := imageio.WritePNGFile(dst, img, text...); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		fmt.Fprintf(env.Stdout, "%s → %s (%d×%d)\n", src, dst, img.W, img.H)
		return nil
	}
	if !st.IsDir() {
		if d := filepath.Dir(*out); d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		return one(*in, *out)
	}
	entries, err := os.ReadDir(*in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".png") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := one(filepath.Join(*in, e.Name()), filepath.Join(*out, e.Name())); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return usagef("no .png files in %s", *in)
	}
	return nil
}

func pow(a, n int) int {
	r := 1
	for range n {
		r *= a
	}
	return r
}

// fileDigest is "sha256:<hex>" of a file: the model version in provenance.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
