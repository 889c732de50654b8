module github.com/hirez-ml/hirez/engine

go 1.26
