// zod/mini, unlike zod's classic API, loads no locale: without one every refusal would read
// "Invalid input". Our schemas import this once so the messages are zod's English ones (the same
// texts the classic API gives) in whichever process parses with them.
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';

z.config(en());
