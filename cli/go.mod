module github.com/hirez-ml/hirez/cli

go 1.26
