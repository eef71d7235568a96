import Testing

@testable import VMM

/// Loads `image` and expects a one-line `LoaderError` containing `text`.
func expectLoaderError(
  _ image: [UInt8], containing text: String, ramMiB: UInt64 = 16, options: LoadOptions = LoadOptions(),
  sourceLocation: SourceLocation = #_sourceLocation
) throws {
  let m = try GuestMemory(ramSize: ramMiB << 20)
  do {
    _ = try ImageLoader.load(image: image, into: m, options: options)
    Issue.record("image loaded; expected an error containing \"\(text)\"", sourceLocation: sourceLocation)
  } catch {
    #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
    #expect(!error.message.contains("\n"), sourceLocation: sourceLocation)
  }
}
