import ShmEngine

extension APIError {
    /// The engine's refusals, mapped to API codes (the message is kept as the engine wrote it).
    init(_ error: EngineError) {
        let code: Code =
            switch error.code {
            case .invalidRequest: .invalidRequest
            case .namespaceNotFound: .namespaceNotFound
            case .serverRunning: .serverRunning
            case .uncleanShutdown: .uncleanShutdown
            case .invalidSegments: .invalidSegments
            case .filesExist: .filesExist
            case .segmentsExist: .segmentsExist
            case .invalidBackup: .invalidBackup
            case .verifyFailed: .verifyFailed
            case .canceled: .canceled
            case .io: .io
            case .system: .system
            case .instanceBusy: .instanceBusy
            case .backupBusy: .backupBusy
            }
        self.init(code, error.message)
    }
}
