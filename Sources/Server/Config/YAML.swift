import CYaml

/// A YAML node with the line it starts on (1-based), as read by libyaml's document loader.
indirect enum YAMLNode: Sendable {
    case scalar(String, plain: Bool, line: Int)
    case sequence([YAMLNode], line: Int)
    case mapping([(key: YAMLNode, value: YAMLNode)], line: Int)

    var line: Int {
        switch self {
        case .scalar(_, _, let line), .sequence(_, let line), .mapping(_, let line): line
        }
    }

    /// A short description of the node for error messages.
    var summary: String {
        switch self {
        case .scalar(let value, _, _): value.isEmpty ? "an empty value" : "\"\(value)\""
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }
}

/// A YAML syntax error (reported before any schema check).
struct YAMLSyntaxError: Error, Sendable {
    var line: Int
    var message: String
}

enum YAML {
    /// Parses one YAML document. Returns nil for an empty document.
    static func parse(_ text: String) throws(YAMLSyntaxError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(line: 0, message: "cannot initialise the YAML parser")
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLSyntaxError) -> YAMLNode? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var document = yaml_document_t()
            guard yaml_parser_load(&parser, &document) == 1 else {
                throw syntaxError(parser)
            }
            defer { yaml_document_delete(&document) }
            guard let root = yaml_document_get_root_node(&document) else { return nil }
            var converter = Converter(document: document)
            let node = converter.convert(root, depth: 0)
            // A second document in the same file is a mistake (a stray `---`).
            var next = yaml_document_t()
            guard yaml_parser_load(&parser, &next) == 1 else { throw syntaxError(parser) }
            defer { yaml_document_delete(&next) }
            if let other = yaml_document_get_root_node(&next) {
                throw YAMLSyntaxError(
                    line: Int(other.pointee.start_mark.line) + 1,
                    message: "only one YAML document is allowed, found a second one")
            }
            return node
        }
    }

    private static func syntaxError(_ parser: yaml_parser_t) -> YAMLSyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
        let context = parser.context.map { String(cString: $0) }
        let line = Int(parser.problem_mark.line) + 1
        return YAMLSyntaxError(line: line, message: context.map { "\($0): \(problem)" } ?? problem)
    }

    private struct Converter {
        var document: yaml_document_t

        mutating func convert(_ node: UnsafeMutablePointer<yaml_node_t>, depth: Int) -> YAMLNode {
            let line = Int(node.pointee.start_mark.line) + 1
            // Aliases can build cycles; the config schema is shallow, so a depth limit is enough.
            if depth > 64 { return .scalar("", plain: true, line: line) }
            switch node.pointee.type {
            case YAML_SCALAR_NODE:
                let scalar = node.pointee.data.scalar
                let buffer = UnsafeBufferPointer(start: scalar.value, count: scalar.length)
                let value = String(decoding: buffer, as: UTF8.self)
                return .scalar(value, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE, line: line)
            case YAML_SEQUENCE_NODE:
                var items: [YAMLNode] = []
                var item = node.pointee.data.sequence.items.start
                while let current = item, current != node.pointee.data.sequence.items.top {
                    if let child = yaml_document_get_node(&document, current.pointee) {
                        items.append(convert(child, depth: depth + 1))
                    }
                    item = current + 1
                }
                return .sequence(items, line: line)
            case YAML_MAPPING_NODE:
                var pairs: [(key: YAMLNode, value: YAMLNode)] = []
                var pair = node.pointee.data.mapping.pairs.start
                while let current = pair, current != node.pointee.data.mapping.pairs.top {
                    if let key = yaml_document_get_node(&document, current.pointee.key),
                        let value = yaml_document_get_node(&document, current.pointee.value)
                    {
                        pairs.append((convert(key, depth: depth + 1), convert(value, depth: depth + 1)))
                    }
                    pair = current + 1
                }
                return .mapping(pairs, line: line)
            default:
                return .scalar("", plain: true, line: line)
            }
        }
    }
}
