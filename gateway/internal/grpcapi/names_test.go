package grpcapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// A 100 kB model name is refused with a message that quotes its head and
// length, not the whole name (the same message goes to the log line).
func TestLongModelNameIsNotEchoed(t *testing.T) {
	f := start(t)
	long := strings.Repeat("a", 100_000)
	stream, err := f.client.GenerateImages(t.Context(), &pb.GenerateImagesRequest{Count: 1, Generator: &pb.ModelRef{Name: long}})
	if err == nil {
		_, err = stream.Recv()
	}
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.InvalidArgument || len(msg) > 1000 || !strings.Contains(msg, "(100000 bytes)") {
		t.Errorf("gRPC: %v, %d-byte message %.300q; want INVALID_ARGUMENT quoting the head and the length", status.Code(err), len(msg), msg)
	}

	srv := httptest.NewServer(f.http)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/images:generate", "application/json", strings.NewReader(`{"count": 1, "generator": {"name": "`+long+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorJSON
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusBadRequest || len(e.Error.Message) > 1000 || !strings.Contains(e.Error.Message, "(100000 bytes)") {
		t.Errorf("HTTP: %d, %d-byte message; want 400 quoting the head and the length", resp.StatusCode, len(e.Error.Message))
	}
}
