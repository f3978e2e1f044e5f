import Foundation
import Testing

@testable import Server

struct JSONParserTests {
    func parse(_ text: String) throws(JSONParser.Failure) -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func validBodies() throws {
        #expect(
            try parse(#" {"a":1,"b":[true,false,null,[]],"c":"x\u00e9\ud83d\ude00\n\"\\\/","d":-0.5e3,"e":{}} "#)
                == .object([
                    "a": .int(1), "b": .array([.bool(true), .bool(false), .null, .array([])]),
                    "c": .string("x\u{e9}\u{1F600}\n\"\\/"), "d": .double(-500), "e": .object([:]),
                ]))
        #expect(try parse("0") == .int(0))
        #expect(try parse("-0") == .int(0))
        #expect(try parse("\"é\"") == .string("é"))
        #expect(try parse("99999999999999999999") == .double(1e20))
        #expect(try parse("1.0") == .double(1))
    }

    @Test(arguments: [
        (#"{"instance":1,"instance":2}"#, #"duplicate key "instance""#, 14),
        (#"{"a":1,}"#, "trailing comma before '}'", 7),
        (#"[1, ]"#, "trailing comma before ']'", 4),
        (#"{"a":01}"#, "numbers must not have leading zeros", 5),
        (#"-00"#, "numbers must not have leading zeros", 1),
        ("{\"a\":\"x\ny\"}", "control character 0xa in a string; escape it", 7),
        (#"{"a":"\ud800"}"#, #"lone surrogate \ud800"#, 6),
        (#"{"a":"\udc00"}"#, #"lone surrogate \udc00"#, 6),
        (#""\ud800\u0041""#, #"lone surrogate \ud800"#, 1),
        (#"{"a":1} x"#, "unexpected data after the JSON value", 8),
        (#"{"a" 1}"#, #"expected ':' after the key "a", found '1'"#, 5),
        (#"{a:1}"#, "expected a key in double quotes, found 'a'", 1),
        (#"[1,,2]"#, "expected a value, found ','", 3),
        (#"1."#, "expected a digit after '.', found the end of the body", 2),
        (#".5"#, "expected a value, found '.'", 0),
        (#"+1"#, "expected a value, found '+'", 0),
        (#"1e"#, "expected a digit in the exponent, found the end of the body", 2),
        (#"1e400"#, "number 1e400 is out of range", 0),
        (#"tru"#, "expected a value, found 't'", 0),
        (#"NaN"#, "expected a value, found 'N'", 0),
        (#""abc"#, "unterminated string", 4),
        (#""\x""#, #"invalid escape \'x'"#, 1),
        (#""\u12g4""#, "expected a hex digit in a \\u escape, found 'g'", 5),
        ("", "expected a value, found the end of the body", 0),
    ])
    func rejected(text: String, message: String, offset: Int) {
        #expect(throws: JSONParser.Failure(message: message, offset: offset)) { try parse(text) }
    }

    @Test func invalidUTF8AndDeepNestingAreRejected() {
        #expect(throws: JSONParser.Failure(message: "a string is not valid UTF-8", offset: 1)) {
            try JSONParser.parse([0x22, 0xff, 0x22])
        }
        let deep = String(repeating: "[", count: JSONParser.maxDepth + 1) + String(repeating: "]", count: 65)
        #expect(throws: JSONParser.Failure(message: "nesting deeper than 64 levels", offset: 64)) { try parse(deep) }
        let ok = String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: 64)
        #expect((try? parse(ok)) != nil)
    }

    @Test func aDuplicateKeyInARequestIs400WithItsName() {
        #expect(
            throws: APIError(
                .invalidJSON, #"the request body is not valid JSON: duplicate key "instance" (at byte 14)"#)
        ) {
            try BackupSubmission.decode(Array(#"{"instance":0,"instance":1}"#.utf8))
        }
        #expect(throws: APIError.self) { try RestoreSubmission.decode(Array(#"{"instance":0,}"#.utf8)) }
    }
}

/// Randomised checks with a fixed seed: what Foundation writes, the parser reads back the same; mutated
/// bodies give a value or a Failure, never a crash.
struct JSONParserRandomTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state
        }
    }

    static func value(_ g: inout Generator, depth: Int) -> (Any, JSONValue) {
        switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &g) {
        case 0: return (NSNull(), .null)
        case 1:
            let b = Bool.random(using: &g)
            return (b, .bool(b))
        case 2:
            let n = Int.random(in: -1_000_000...1_000_000, using: &g)
            return (n, .int(n))
        case 3:
            let scalars = (0..<Int.random(in: 0...8, using: &g)).map { _ in
                Unicode.Scalar([0x22, 0x5c, 0x0a, 0x41, 0xe9, 0x1F600, 0x2028, 0x01].randomElement(using: &g)!)!
            }
            let s = String(String.UnicodeScalarView(scalars))
            return (s, .string(s))
        case 4:
            let items = (0..<Int.random(in: 0...4, using: &g)).map { _ in value(&g, depth: depth + 1) }
            return (items.map(\.0), .array(items.map(\.1)))
        default:
            var any: [String: Any] = [:]
            var parsed: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0...4, using: &g) {
                let (a, p) = value(&g, depth: depth + 1)
                any["k\(index)"] = a
                parsed["k\(index)"] = p
            }
            return (any, .object(parsed))
        }
    }

    @Test func foundationsOutputReadsBackTheSame() throws {
        var g = Generator(state: 42)
        for _ in 0..<500 {
            let (any, expected) = Self.value(&g, depth: 0)
            let data = try JSONSerialization.data(withJSONObject: any, options: [.fragmentsAllowed])
            #expect(try JSONParser.parse(Array(data)) == expected, "\(String(decoding: data, as: UTF8.self))")
        }
    }

    @Test func mutatedBodiesNeverCrash() throws {
        var g = Generator(state: 7)
        var accepted = 0
        for _ in 0..<3000 {
            let (any, _) = Self.value(&g, depth: 0)
            var bytes = Array(try JSONSerialization.data(withJSONObject: any, options: [.fragmentsAllowed]))
            for _ in 0..<Int.random(in: 1...3, using: &g) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &g)
                switch Int.random(in: 0..<3, using: &g) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &g)
                case 1: bytes.remove(at: index)
                default: bytes.insert(Array(#",:[]{}"\u0-e."#.utf8).randomElement(using: &g)!, at: index)
                }
            }
            if (try? JSONParser.parse(bytes)) != nil { accepted += 1 }
        }
        // Some mutations keep the body valid (inside a string), most do not.
        #expect(accepted > 0 && accepted < 3000)
    }
}
