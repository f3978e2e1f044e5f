import ArgumentParser
import Dispatch
import Foundation
import Logging

/// `-c/--config` of the commands that read the configuration.
struct ConfigFileOption: ParsableArguments {
    @Option(name: [.short, .long], help: "The YAML configuration file.")
    var config: String

    /// Loads the config or prints every error (one line each) and exits 78 (EX_CONFIG: systemd's
    /// RestartPreventExitStatus=78 stops a restart loop on a bad config).
    func load() throws -> Config {
        switch ConfigLoader.load(path: config) {
        case .success(let loaded):
            return loaded
        case .failure(let errors):
            for error in errors.errors {
                FileHandle.standardError.write(Data("asmtd: config error: \(error)\n".utf8))
            }
            throw ExitCode(SysExit.config.rawValue)
        }
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the REST service (the default command).")

    @OptionGroup var configFile: ConfigFileOption

    func run() async throws {
        let loaded = try configFile.load()
        let json = loaded.service.logFormat == .json
        let level = loaded.service.logLevel.loggerLevel
        LoggingSystem.bootstrap { label in ServiceLogHandler(label: label, level: level, json: json) }
        let logger = Logger(label: "asmtd")

        // Signals arrive through Dispatch, not as asynchronous handlers.
        signal(SIGPIPE, SIG_IGN)
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "asmtd.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGTERM, SIGINT, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }

        let service = Service(config: loaded, logger: logger)
        do {
            try service.start()
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        await service.becomeReady()
        for await number in stream {
            if number == SIGHUP {
                logger.warning("SIGHUP ignored: configuration reload is not supported; restart asmtd to apply changes")
                continue
            }
            logger.info("signal received", metadata: ["signal": "\(number == SIGTERM ? "SIGTERM" : "SIGINT")"])
            service.notify.stopping(status: "stopping")
            break
        }
        // A second SIGTERM/SIGINT does not wait for shutdown-timeout: running jobs are canceled (and cleaned
        // up) at once.
        let impatient = Task {
            for await number in stream where number != SIGHUP {
                logger.warning("second signal: canceling running jobs now")
                service.cancelShutdownWork()
            }
        }
        await service.shutdown()
        impatient.cancel()
        withExtendedLifetime(sources) {}
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a configuration file and exit: 0 when valid, 78 with every error otherwise.")

    @OptionGroup var configFile: ConfigFileOption

    func run() throws {
        let loaded = try configFile.load()
        let instances = loaded.instances.map { "\($0.instance) (\($0.namespaces.joined(separator: ",")))" }
        print("\(loaded.file): valid; instances \(instances.joined(separator: ", "))")
    }
}
