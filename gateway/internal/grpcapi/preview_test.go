package grpcapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// TestPreviewsOverBufconn: a 64 px generator to 256 px is two passes, so
// each image has a 64 px generator preview and a 128 px pass-1 preview
// before its final; the messages carry only their preview field.
func TestPreviewsOverBufconn(t *testing.T) {
	f := start(t)
	stream, err := f.client.GenerateImages(context.Background(), &pb.GenerateImagesRequest{Count: 2, Seed: 5, Previews: true})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recvAll(t, stream)
	if err != nil || len(msgs) != 6 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	got := map[int32][]string{}
	for _, m := range msgs {
		if pv := m.GetPreview(); pv != nil {
			if m.GetPng() != nil || m.GetProvenance() != nil || len(pv.GetPng()) == 0 || pv.GetSeed() != 5+int64(pv.GetIndex()) {
				t.Fatalf("preview message %v", m)
			}
			got[pv.GetIndex()] = append(got[pv.GetIndex()], pv.GetStage().String()+"@"+itoa(pv.GetSide())+"/"+itoa(pv.GetPass()))
			continue
		}
		got[m.GetIndex()] = append(got[m.GetIndex()], "final@"+itoa(m.GetWidth()))
	}
	want := "PREVIEW_STAGE_GENERATOR@64/0 PREVIEW_STAGE_UPSCALE@128/1 final@256"
	for i := range int32(2) {
		if s := strings.Join(got[i], " "); s != want {
			t.Errorf("image %d: %s, want %s", i, s, want)
		}
	}

	stream, err = f.client.GenerateImages(context.Background(), &pb.GenerateImagesRequest{Count: 1, Pipeline: pb.Pipeline_PIPELINE_SINGLE_DCGAN, Size: 64, Previews: true})
	if err == nil {
		_, err = recvAll(t, stream)
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "previews") {
		t.Fatalf("single DCGAN with previews: %v", err)
	}
}

// TestPreviewLinesOverHTTP: preview lines have the single key "preview".
func TestPreviewLinesOverHTTP(t *testing.T) {
	f := start(t)
	rec := httptest.NewRecorder()
	f.http.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/images:generate", strings.NewReader(`{"count": 1, "seed": "5", "previews": true}`)))
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var shapes []string
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(nil, pb.MaxMessageBytes)
	for sc.Scan() {
		var line map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if pv, ok := line["preview"]; ok {
			var p struct {
				Index int    `json:"index"`
				Side  int    `json:"side"`
				Stage string `json:"stage"`
				Seed  string `json:"seed"`
			}
			if err := json.Unmarshal(pv, &p); err != nil || len(line) != 1 {
				t.Fatalf("preview line %s: %v", sc.Bytes()[:min(200, len(sc.Bytes()))], err)
			}
			shapes = append(shapes, p.Stage+"@"+itoa(int32(p.Side))+" seed "+p.Seed)
			continue
		}
		shapes = append(shapes, "final")
	}
	if s := strings.Join(shapes, ", "); s != "PREVIEW_STAGE_GENERATOR@64 seed 5, PREVIEW_STAGE_UPSCALE@128 seed 5, final" {
		t.Fatalf("lines: %s", s)
	}
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
