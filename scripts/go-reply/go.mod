module goreply

go 1.27
