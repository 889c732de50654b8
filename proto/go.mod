module github.com/hirez-ml/hirez/proto

go 1.26
