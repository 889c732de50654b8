module github.com/hirez-ml/hirez/cli

go 1.26.0

require github.com/hirez-ml/hirez/engine v0.0.0

require golang.org/x/image v0.48.0 // indirect

replace github.com/hirez-ml/hirez/engine => ../engine
