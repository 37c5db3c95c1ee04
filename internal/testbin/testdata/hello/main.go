// Command hello is the binary testbin's own test builds.
package main

import "fmt"

func main() { fmt.Println("hello from testbin") }
