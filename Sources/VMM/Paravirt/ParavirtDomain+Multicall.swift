/// `multicall`: a batch of hypercalls in one trap.
extension ParavirtDomain {
  func registerMulticall(on dispatcher: HypercallDispatcher) {}
}
