package control

// Rephrase is rephrase, for the tests of package control_test.
var Rephrase = rephrase
