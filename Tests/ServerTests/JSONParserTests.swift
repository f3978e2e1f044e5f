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
