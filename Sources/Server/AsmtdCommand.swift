import ArgumentParser
import ShmEngine

/// The `asmtd` executable: the REST service (default), the local engine commands and the service's client.
@main
struct AsmtdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asmtd",
        abstract: "Back up and restore Aerospike shared-memory index segments.",
        discussion: SysExit.help,
        version: Engine.version,
        subcommands: [
            ServeCommand.self,
            ValidateCommand.self,
            AnalyzeCommand.self,
            BackupCommand.self,
            RestoreCommand.self,
            SegmentsCommand.self,
            CleanupCommand.self,
            DemoCommand.self,
            JobCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )

    /// A first argument that is neither an option nor a command is a usage error naming it (the default
    /// command would otherwise take it and complain about a missing --config).
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        if let problem = CommandLineCheck.unknownCommand(arguments, known: names) {
            exit(withError: ValidationError(problem))
        }
        await main(nil)
    }
}

enum CommandLineCheck {
    /// The message for an unknown first word, or nil (pure).
    static func unknownCommand(_ arguments: [String], known: [String]) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-"), !known.contains(first) else { return nil }
        var message = "unknown command '\(first)'"
        if let suggestion = Suggestion.closest(to: first, in: known) { message += "; did you mean '\(suggestion)'?" }
        return message + " (commands: \(known.filter { $0 != "help" }.joined(separator: ", ")))"
    }
}
