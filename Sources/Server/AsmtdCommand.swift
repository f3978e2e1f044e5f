import ArgumentParser

/// The `asmtd` executable: the REST service (default) and the local engine commands.
@main
struct AsmtdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asmtd",
        abstract: "Back up and restore Aerospike shared-memory index segments.",
        subcommands: [
            ServeCommand.self,
            ValidateCommand.self,
            AnalyzeCommand.self,
            BackupCommand.self,
            RestoreCommand.self,
            SegmentsCommand.self,
            CleanupCommand.self,
            DemoCommand.self,
        ],
        defaultSubcommand: ServeCommand.self
    )
}
