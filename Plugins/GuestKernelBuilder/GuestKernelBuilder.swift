import Foundation
import PackagePlugin

/// Builds the reference guest kernel (`guests/kernel/build.sh`) into `trivisor-kernel.elf`, a
/// resource of the target that uses the plugin, together with the test-only `elf64-boot-shim.elf`.
/// Every file under guests/kernel is an input, so an edit to any of them rebuilds the image.
@main
struct GuestKernelBuilder: BuildToolPlugin {
  func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
    let kernelDirectory = context.package.directoryURL.appending(path: "guests/kernel")
    let workDirectory = context.pluginWorkDirectoryURL.appending(path: "kernel-build")
    let image = context.pluginWorkDirectoryURL.appending(path: "trivisor-kernel.elf")
    let shim = context.pluginWorkDirectoryURL.appending(path: "elf64-boot-shim.elf")
    var environment: [String: String] = [:]
    if let swiftc = try? context.tool(named: "swiftc") {
      environment["TRIVISOR_TOOLCHAIN_BIN"] = swiftc.url.deletingLastPathComponent().path
    }
    return [
      .buildCommand(
        displayName: "Building the reference guest kernel",
        executable: URL(fileURLWithPath: "/bin/bash"),
        arguments: [kernelDirectory.appending(path: "build.sh").path, image.path, workDirectory.path],
        environment: environment,
        inputFiles: Self.files(under: kernelDirectory),
        outputFiles: [image, shim]
      )
    ]
  }

  /// Every regular file below `directory`, sorted so the command line is stable.
  private static func files(under directory: URL) -> [URL] {
    guard
      let enumerator = FileManager.default.enumerator(
        at: directory, includingPropertiesForKeys: [.isRegularFileKey])
    else { return [] }
    var files: [URL] = []
    for case let url as URL in enumerator
    where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
      files.append(url)
    }
    return files.sorted { $0.path < $1.path }
  }
}
