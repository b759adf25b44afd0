package apply

// TakeOverObject exposes Engine.takeOver to the external tests.
var TakeOverObject = (*Engine).takeOver
