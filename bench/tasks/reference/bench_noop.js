// Does nothing: the drain benchmark measures the worker, not the handler.
module.exports = async () => {};
