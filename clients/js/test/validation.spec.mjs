// Vitest entry of LangGraph's validation suite on EdgeMemorySaver. The package's own CLI
// (`validate-checkpointer`) cannot read an initializer in 1.1.1 (its initializer schema
// is missing from the published build), so the suite runs through its library entry,
// `validate`, with the same initializer. Run by test/validation.test.mjs.
import { validate } from '@langchain/langgraph-checkpoint-validation';

import initializer from './validation.initializer.mjs';

validate(initializer);
