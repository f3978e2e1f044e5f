import Foundation
import PackagePlugin

/// Embeds the package's openapi.yaml into the target as a Swift string (`OpenAPIDocument.text`), so that
/// `GET /openapi.yaml` serves exactly the document of the source tree from any installed binary.
@main
struct EmbedOpenAPI: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let input = context.package.directoryURL.appending(path: "openapi.yaml")
        let output = context.pluginWorkDirectoryURL.appending(path: "OpenAPIDocument.swift")
        return [
            .buildCommand(
                displayName: "Embedding openapi.yaml",
                executable: try context.tool(named: "EmbedText").url,
                arguments: [input.path(percentEncoded: false), output.path(percentEncoded: false), "OpenAPIDocument"],
                inputFiles: [input],
                outputFiles: [output])
        ]
    }
}
