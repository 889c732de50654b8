package grpcapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// flatGenerator and nearestUpscaler stand in for the models: what is fuzzed
// is the HTTP/JSON decoding and validation in front of them, so they are
// instant and never fail.
type flatGenerator struct{}

func (flatGenerator) Generate(_ context.Context, seeds []int64, _ pipeline.ModelRef, label string, yield func(pipeline.Generated) error) error {
	if err := model.CheckLabel("fuzz", label, []string{"smile"}); err != nil {
		return err
	}
	for i, s := range seeds {
		img := imageio.NewRGB(32, 32)
		img.Pix[0] = byte(s)
		if err := yield(pipeline.Generated{Index: i, Image: img, Prov: pipeline.Provenance{Seed: s, Label: label}}); err != nil {
			return err
		}
	}
	return nil
}

func (flatGenerator) Labels(context.Context, pipeline.ModelRef) (pipeline.Labels, error) {
	return pipeline.Labels{Labels: []string{"smile"}}, nil
}

type nearestUpscaler struct{}

func (nearestUpscaler) Upscale(_ context.Context, img *imageio.RGB, _ pipeline.ModelRef) (*imageio.RGB, pipeline.Provenance, error) {
	out := imageio.NewRGB(2*img.W, 2*img.H)
	for y := range out.H {
		for x := range out.W {
			r, g, b := img.At(x/2, y/2)
			out.Set(x, y, r, g, b)
		}
	}
	return out, pipeline.Provenance{}, nil
}

// FuzzHTTP sends arbitrary bodies to the gateway's HTTP/JSON routes (and
// arbitrary query strings to GET /v1/labels): every answer must be a 200 with
// well-formed content or a JSON error whose HTTP status is its code's, never
// a panic, and never a 5xx: the models behind never fail, so any server
// error would be bad input mistaken for a fault of the server.
func FuzzHTTP(f *testing.F) {
	var png bytes.Buffer
	if err := imageio.EncodePNG(&png, imageio.NewRGB(3, 2)); err != nil {
		f.Fatal(err)
	}
	img := base64.StdEncoding.EncodeToString(png.Bytes())
	for _, s := range []struct {
		route uint8
		body  string
	}{
		{0, `{"count": 2, "seed": "7", "size": 64}`},
		{0, `{"count": 1, "label": "smile", "pipeline": "PIPELINE_DCGAN_SRCNN", "generator": {"name": "g", "version": "production"}}`},
		{0, `{"count": 1, "pipeline": 42, "unknown": true}`},
		{0, `{"count": 0}`},
		{1, `{"image": "` + img + `", "scale": 2}`},
		{1, `{"image": "` + img + `", "scale": 4, "model": {"name": "sr"}}`},
		{1, `{"image": "iQ=="}`},
		{2, `pipeline=PIPELINE_SINGLE_DCGAN&generator.name=g`},
		{2, `pipeline=2&pipeline=3`},
	} {
		f.Add(s.route, []byte(s.body))
	}
	// Small output sizes and counts keep one input cheap; the real limits'
	// numbers are tested in TestHTTP.
	lim := Limits
	lim.MaxCount, lim.MaxSize, lim.MaxInputSide, lim.MaxOutputSide = 4, 64, 64, 256
	h := HTTP(pipeline.New(flatGenerator{}, nearestUpscaler{}, lim), func() bool { return true })
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		var req *http.Request
		switch route % 3 {
		case 0:
			req = httptest.NewRequest(http.MethodPost, "/v1/images:generate", bytes.NewReader(body))
		case 1:
			req = httptest.NewRequest(http.MethodPost, "/v1/images:upscale", bytes.NewReader(body))
		default:
			req = httptest.NewRequest(http.MethodGet, "/v1/labels", nil)
			req.URL.RawQuery = string(body)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			var e errorJSON
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d with a body that is not a JSON error (%v): %q", w.Code, err, w.Body.String())
			}
			if w.Code >= 500 {
				t.Fatalf("bad input answered %d %s: %s", w.Code, e.Error.Code, e.Error.Message)
			}
			return
		}
		switch route % 3 {
		case 0:
			sc := bufio.NewScanner(w.Body)
			sc.Buffer(nil, 16<<20)
			for sc.Scan() {
				var msg pb.GenerateImagesResponse
				if err := protojson.Unmarshal(sc.Bytes(), &msg); err != nil {
					t.Fatalf("a 200 stream has a line that is not a GenerateImagesResponse: %v: %q", err, sc.Text())
				}
			}
		case 1:
			var msg pb.GatewayServiceUpscaleResponse
			if err := protojson.Unmarshal(w.Body.Bytes(), &msg); err != nil {
				t.Fatalf("a 200 upscale is not a GatewayServiceUpscaleResponse: %v", err)
			}
			if _, err := imageio.Decode(msg.GetPng(), imageio.DefaultLimits); err != nil {
				t.Fatalf("a 200 upscale's PNG does not decode: %v", err)
			}
		default:
			var msg pb.GatewayServiceListLabelsResponse
			if err := protojson.Unmarshal(w.Body.Bytes(), &msg); err != nil {
				t.Fatalf("a 200 labels answer is not a GatewayServiceListLabelsResponse: %v", err)
			}
		}
	})
}
