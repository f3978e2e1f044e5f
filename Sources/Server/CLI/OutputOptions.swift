import ArgumentParser

/// `--json` and `--progress` of the commands that run a job.
struct JobOutputOptions: ParsableArguments {
    @Flag(help: "Print the result as JSON (the API's job object) on stdout.")
    var json = false

    @Flag(help: "Show the progress line even when stderr is not a terminal (one line every 2 s).")
    var progress = false
}
