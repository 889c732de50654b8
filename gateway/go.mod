module github.com/hirez-ml/hirez/gateway

go 1.26
